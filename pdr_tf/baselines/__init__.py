"""Baselines for the clustering comparison (paper Table 1): a VQ-VAE and raw pixels + PCA."""

from pdr_tf.baselines.pixels_pca import PCAState, embed_pca, fit_pca, load_pca, reconstruct_pca, save_pca
from pdr_tf.baselines.vqvae import VQVAE, VectorQuantizer, load_vqvae, save_vqvae, train_vqvae, vqvae_losses
from pdr_tf.baselines.vqvae import embed as embed_vqvae

__all__ = [
  "PCAState",
  "embed_pca",
  "fit_pca",
  "load_pca",
  "reconstruct_pca",
  "save_pca",
  "VQVAE",
  "VectorQuantizer",
  "embed_vqvae",
  "load_vqvae",
  "save_vqvae",
  "train_vqvae",
  "vqvae_losses",
]
