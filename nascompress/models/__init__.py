"""Model families the built-in spaces build (torch modules; imported lazily by the spaces).

Usable directly too, e.g. to pre-train a model for the ``user-model`` space:
``MobileNet.from_stages(...)`` and ``ResNet(...)`` work for any input size and channel
count.
"""
