"""vidtok_kit.convert"""
