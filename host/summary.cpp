// Purpose: the human summary table of a results JSON (see summary.h).
#include "summary.h"

#include <cstdio>

namespace softflow {
namespace {

std::string number(const nlohmann::json& value, const char* format) {
  if (!value.is_number()) return "-";
  char text[32];
  std::snprintf(text, sizeof text, format, value.get<double>());
  return text;
}

}  // namespace

std::string summary_table(const nlohmann::json& results) {
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line, "%-5s %-10s %-8s %-8s %-8s %-10s %-9s  %s\n", "cell", "t", "H/logn", "H/logn",
                "H/logn", "s_max>=", "diverged", "grid parameters");
  out += line;
  std::snprintf(line, sizeof line, "%-5s %-10s %-8s %-8s %-8s %-10s %-9s\n", "", "", "q05", "q50", "q95", "0.99",
                "");
  out += line;
  const nlohmann::json& axes_source = results["study"];
  for (const auto& cell : results["cells"]) {
    const nlohmann::json& last = cell["checkpoints"].back();
    const nlohmann::json ratio = last["observables"].value("entropy_ratio", nlohmann::json::object());
    const nlohmann::json quantiles = ratio.value("quantiles", nlohmann::json::object());
    std::string grid;
    for (const auto& item : cell["parameters"].items())
      if (axes_source.contains(item.key()) && axes_source[item.key()].is_array())
        grid += item.key() + "=" + (item.value().is_string() ? item.value().get<std::string>() : item.value().dump()) +
                " ";
    std::snprintf(line, sizeof line, "%-5d %-10s %-8s %-8s %-8s %-10s %-9lld  %s\n", cell["index"].get<int>(),
                  number(last["t"], "%.4g").c_str(), number(quantiles.value("q05", nlohmann::json()), "%.4f").c_str(),
                  number(quantiles.value("q50", nlohmann::json()), "%.4f").c_str(),
                  number(quantiles.value("q95", nlohmann::json()), "%.4f").c_str(),
                  number(last["fractions"]["s_max_ge_0_99"], "%.4f").c_str(),
                  last["counts"]["diverged"].get<long long>(), grid.c_str());
    out += line;
  }
  return out;
}

}  // namespace softflow
