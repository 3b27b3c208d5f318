"""lmfoundry.data"""
