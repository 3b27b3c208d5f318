"""lmfoundry.data.curation"""
