/**
 * The package's entry: `import { BridgeTower } from 'bridgetower-node'` (docs/library.md).
 * Everything exported here is public API; the rest of the tree is internal.
 */
export { BridgeTower, type EmbedItem, type LoadOptions, type SearchCallOptions } from './bridgetower.js';
export type { ImageInput, RawImage } from './image-input.js';
export { MemoryGallery } from './memory-gallery.js';
export type { ModelInfo } from './bundle-model.js';
export type { SearchHit } from './task-pipeline.js';
export { PRECISIONS, type Precision } from './precision.js';
export type { VqaAnswer, EntailmentResult, Nlvr2Result } from '../runtime/task-results.js';
export type { FillMaskPrediction } from '../runtime/fill-mask.js';
export type { Device } from '../runtime/session.js';
export type { TaskName } from '../bundle/tasks.js';
export { convert, evaluate, exportCkpt, exportHf, fineTune, predict, type EvaluateOptions, type OnProgress, type Progress } from './operations.js';
export type { ConvertSummary } from '../convert/convert-checkpoint.js';
export type { ExportSummary } from '../convert/export/export-ckpt.js';
export type { ExportHfSummary } from '../convert/export/export-hf.js';
export type { EvaluationResult, Predictions } from '../train/evaluate/evaluate.js';
export type { FineTuneOptions, FineTuneResult } from '../train/fine-tune.js';
export type { TrainEvent } from '../train/train-events.js';
export type { FineTuneTask } from '../train/tasks.js';
export { buildDemoBundle } from '../convert/demo/demo-bundle.js';
export { BridgeTowerError, ERROR_CODES, type ErrorCode } from '../common/errors.js';
export { VERSION } from '../common/version.js';
