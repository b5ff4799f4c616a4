"""Training: losses, callbacks and the fastai Learner."""
