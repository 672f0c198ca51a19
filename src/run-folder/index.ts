// The run folder (`muse-train --out`) and its checkpoints: every name in it, the checkpoint store, the integrity
// check, sampling.json. The one place that knows them; stages save and load through it.
export * from './names.ts';
export * from './checkpoint-files.ts';
export * from './checkpoint-store.ts';
export * from './find-checkpoint.ts';
export * from './sampling-json.ts';
export * from './model-copy.ts';
