import { BridgeTowerError, listSome } from '../../common/errors.js';
import type { BridgeTowerArchitecture } from '../../bundle/architecture.js';
import { lookupCanonicalName } from '../../bundle/canonical-names.js';
import type { ValueTransform } from '../../bundle/tensors/canonical-tensor.js';
import type { TensorView } from '../../bundle/tensors/tensor-view.js';
import { HF_CLASSES, headOfTensor, type HeadName, type HfClassName } from './hf-classes.js';
import { huggingFaceNameOf } from './hf-names.js';
import { HF_BASE_MODEL_PREFIX, HF_NAME_MAP } from '../huggingface/hf-name-map.js';
import type { Reported } from './upstream-state-dict.js';

/**
 * Where each bundle tensor goes in an exported Hugging Face folder:
 *  - `model.safetensors`: the encoder and the chosen class's heads, under HF names (the name table
 *    run backwards), value transforms inverted;
 *  - the head file: heads the chosen class does not hold — HF names where HF has the tensor,
 *    upstream names for the classifiers it has no module for (VQA, SNLI-VE, NLVR2) — and NLVR2's
 *    whole 3-row token-type table;
 *  - nowhere: tensors transformers' BridgeTower has no parameter for, reported with the reason.
 */

export interface HfEntry {
  /** The name in the written file. */
  readonly name: string;
  readonly canonical: string;
  readonly view: TensorView;
  /** The forward (HF → bundle) transform; its inverse is written. */
  readonly transform?: ValueTransform;
  /** Keep only the first `rows` rows (HF's token_type_embeddings has 2, NLVR2's 3). */
  readonly rows?: number;
  readonly shape: readonly number[];
}

export interface HfStateDictPlan {
  /** In the order safetensors' own writer uses (by name), which is the order save_pretrained's files have. */
  readonly model: HfEntry[];
  readonly headFile: HfEntry[];
  /** Bundle heads written to the head file. */
  readonly headFileHeads: HeadName[];
  readonly leftOut: Reported[];
}

/** HF's BridgeTowerModel holds two token types (text 0, image 1). */
const HF_TOKEN_TYPES = 2;
const TOKEN_TYPES = 'token_type_embeddings.weight';

export function planHfStateDict(tensors: ReadonlyMap<string, TensorView>, arch: BridgeTowerArchitecture, hfClass: HfClassName): HfStateDictPlan {
  const model: HfEntry[] = [];
  const headFile: HfEntry[] = [];
  const heads = new Set<HeadName>();
  const leftOut: Reported[] = [];
  const unknown: string[] = [];
  const unplaced: string[] = [];
  const classHeads: readonly HeadName[] = HF_CLASSES[hfClass].heads;
  // BridgeTowerModel saves its encoder without the prefix the task classes hold it under.
  const inClass = (hf: string) => (HF_CLASSES[hfClass].prefixed || !hf.startsWith(HF_BASE_MODEL_PREFIX) ? hf : hf.slice(HF_BASE_MODEL_PREFIX.length));
  for (const [canonical, view] of tensors) {
    const row = lookupCanonicalName(canonical);
    if (!row) {
      unknown.push(canonical);
      continue;
    }
    const hf = huggingFaceNameOf(canonical);
    const entry = (name: string, extra: Partial<HfEntry> = {}): HfEntry => ({
      name,
      canonical,
      view,
      shape: view.shape,
      ...(hf?.transform ? { transform: hf.transform } : {}),
      ...extra,
    });
    const head = headOfTensor(canonical);
    if (head && !arch.heads[head]) {
      // upstream's BTTransformer creates `temperature` for every task, ITC or not.
      leftOut.push({ name: canonical, reason: `part of the ${head} head, which this bundle does not have (upstream creates it whatever the task); no forward pass reads it` });
    } else if (head && !classHeads.includes(head)) {
      headFile.push(entry(hf?.hf ?? canonical));
      heads.add(head);
    } else if (hf && canonical === TOKEN_TYPES && view.shape[0]! > HF_TOKEN_TYPES) {
      model.push(entry(inClass(hf.hf), { rows: HF_TOKEN_TYPES, shape: [HF_TOKEN_TYPES, ...view.shape.slice(1)] }));
      headFile.push(entry(canonical));
    } else if (hf) {
      model.push(entry(inClass(hf.hf)));
    } else if (!row.used) {
      // A buffer HF_NAME_MAP ignores on the way in (old pytorch_model.bin files) says so itself.
      const buffer = HF_NAME_MAP.find((r) => r.kind === 'ignored' && r.canonical === canonical);
      const reason = buffer
        ? `${buffer.note}; transformers ≥ 4.31 neither saves nor expects it`
        : `${row.note ?? `${row.module}: unused`}; transformers' BridgeTower has no such parameter`;
      leftOut.push({ name: canonical, reason });
    } else {
      unplaced.push(canonical);
    }
  }
  if (unknown.length > 0) {
    throw new BridgeTowerError('E_UNKNOWN_TENSOR', `the bundle holds ${unknown.length} tensor(s) that are not BridgeTower parameters: ${listSome(unknown)}; nothing is exported under a guessed name`, {
      unknown,
    });
  }
  if (unplaced.length > 0) {
    throw new BridgeTowerError('E_ARCHITECTURE', `${unplaced.length} tensor(s) the bundle's forward pass reads have no place in Hugging Face's BridgeTower: ${listSome(unplaced)}`, {
      unplaced,
    });
  }
  const byName = (a: HfEntry, b: HfEntry) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  return { model: model.sort(byName), headFile: headFile.sort(byName), headFileHeads: [...heads], leftOut };
}
