"""Data: image files, SR datasets and the Lightning DataModule."""
