def test_never_collected():
    raise AssertionError("testpaths names checks/ only")
