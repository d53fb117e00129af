"""Synthetic training images: a class-conditional DDPM trained on the real split (ddpm, sampling), a text-to-image
path through diffusers' StableDiffusionPipeline (stable_diffusion), how synthetic images are mixed into a training
set (mixing) and how faithful they are (fidelity)."""
