"""The torch side of mipnet: data sets, training, pruning and the workflows that chain them."""
