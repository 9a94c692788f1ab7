// Purpose: the short human summary of a finished study printed on stdout: one line per cell with the entropy
// ratio's quantiles and the polarized fraction at the last checkpoint.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace softflow {

std::string summary_table(const nlohmann::json& results);

}  // namespace softflow
