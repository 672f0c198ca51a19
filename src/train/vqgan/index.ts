// The VQGAN training stage: pixel loader, losses, discriminator, perceptual loss, trainer, reconstruction grid.
export * from './pixel-data.ts';
export * from './losses.ts';
export * from './discriminator.ts';
export * from './perceptual.ts';
export * from './codebook-usage.ts';
export * from './codebook-init.ts';
export * from './trainer.ts';
export * from './recon-grid.ts';
