"""lmfoundry.training"""
