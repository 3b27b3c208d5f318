"""lmfoundry.eval"""
