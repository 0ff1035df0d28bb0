"""Tests of ziri_images/uploads/: the edit form, its images, the bound on upload bytes."""
