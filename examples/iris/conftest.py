# Makes model.py importable from the tests without installing the example.
