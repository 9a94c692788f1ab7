// Purpose: the attention family's data sets (science.md section 2): random tokens and labels drawn from the
// counter-based streams, the toy sets of the papers' code (ucr-optml/max_margin_attention, umich-sota/TF-as-SVM),
// and data sets loaded from a file. Every set is laid out as attention.h says: X (N x T x d), Y (N), then the fixed
// parameters of the cell's trainable set.
#pragma once

#include <cstdint>
#include <string>

#include "study.h"

namespace softflow {

struct AttentionDims {
  int inputs = 0, tokens = 0, d = 0;
};

// The sizes a toy data set fixes; false for the data sets whose sizes the study chooses (gaussian, sphere, file).
bool toy_dataset_dims(AttentionDataset dataset, AttentionDims& dims);

// True for the data sets with random draws in them (gaussian, sphere, multi_input): the only ones whose runs can
// have data sets of their own.
bool dataset_is_random(AttentionDataset dataset);

// The trainable sets a data set supports; an empty string if `trainable` is one, else the rule broken.
std::string dataset_trainable_rule(AttentionDataset dataset, AttentionTrainable trainable);

// Fills data (cell.shape.data_size()) for `run` (kSharedRunId for cell-wide data), in double.
void draw_attention_data(const CellParams& cell, std::uint64_t seed, std::uint32_t cell_index, std::uint32_t run,
                         double* data);

// Reads a data set file (format in README "Attention data sets") for a trainable set. Throws InputError naming the
// file and what is wrong.
AttentionFileData load_attention_dataset(const std::string& path, AttentionTrainable trainable);

}  // namespace softflow
