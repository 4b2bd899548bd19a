/**
 * Why a PyTorch checkpoint is refused: `details.reason` of the E_CHECKPOINT_FORMAT (and
 * E_FORBIDDEN_GLOBAL) errors of read-torch-checkpoint.ts, legacy-format.ts and pickle-allowlist.ts.
 * The zip container's own reasons are ZIP_REASONS (convert/zip/zip-reader.ts), a tensor's layout
 * TENSOR_LAYOUT_REASONS (bundle/tensors/read-tensor.ts).
 */
export const TORCH_CHECKPOINT_REASONS = {
  not_torch: 'neither a zip archive nor a legacy torch pickle',
  no_pickle: "a zip archive without a '<name>/data.pkl' record",
  several_pickles: 'a zip archive holding several checkpoints',
  big_endian: 'written on a big-endian machine',
  no_state_dict: 'the pickle holds no dict of tensors',
  missing_storage: 'a storage a tensor uses has no record (zip) or is missing from the storage list (legacy)',
  storage_conflict: 'one storage referenced with two dtypes or sizes',
  storage_too_small: 'a storage (or storage view) declares more elements than its bytes hold',
  storage_size_mismatch: "a legacy storage's element count differs from the pickle's",
  storage_unused: 'a legacy storage listed that no tensor uses',
  misplaced_storage: 'a legacy storage referenced outside the main pickle',
  truncated: 'the file ends inside a storage',
  bad_magic: 'a legacy checkpoint without the torch magic number',
  bad_protocol: 'a legacy protocol version other than 1001',
  bad_storage_list: 'a legacy storage key list that is not a list of strings',
  pickle_too_large: 'legacy pickles larger than a state-dict checkpoint has',
  bad_pickle: 'bytes that do not unpickle',
  bad_persistent_id: "a persistent id that is not torch's ('storage', class, key, location, numel)",
  malformed_global: 'an allowlisted global called with arguments it never takes',
  forbidden_global: 'a global outside the allowlist (it could run code when Python loads it)',
} as const;
export type TorchCheckpointReason = keyof typeof TORCH_CHECKPOINT_REASONS;
