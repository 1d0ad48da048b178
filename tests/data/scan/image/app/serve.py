"""Stands in for a model server; the image scanner's tests never run it."""

print("serving")
