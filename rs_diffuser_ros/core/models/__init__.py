"""The three networks (denoiser U-Net, distributional critic, inverse dynamics) and their builder."""
