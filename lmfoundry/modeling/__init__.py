"""lmfoundry.modeling"""
