"""lmfoundry.tokenization"""
