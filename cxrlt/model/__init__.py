"""Models: timm backbones, classifier heads and the network that joins them."""
