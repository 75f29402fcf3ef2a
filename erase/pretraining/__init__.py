"""Training models from scratch for `erase pretrain`: embedded generators and their probes, classifiers and the
text-to-image world. Used by erase/commands/pretrain.py; imports no command."""
