"""lmfoundry.hub"""
