import pytest

from nascompress.registry import Registry, RegistryError


def test_register_resolve_and_duplicates():
    reg = Registry("widgets")

    @reg.register("alpha")
    class Alpha:
        pass

    assert reg.resolve("alpha") is Alpha
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("alpha")(Alpha)


def test_unknown_name_suggests_close_matches_and_lists_all():
    reg = Registry("widgets")
    reg.register("bayesian")(object)
    reg.register("random")(object)
    with pytest.raises(RegistryError) as info:
        reg.resolve("bayesain", field="strategy.name")
    message = str(info.value)
    assert message.startswith("strategy.name:")
    assert "'bayesian'" in message and "random" in message


def test_import_path_and_bad_import_path():
    reg = Registry("widgets")
    assert reg.resolve("collections:OrderedDict").__name__ == "OrderedDict"
    with pytest.raises(RegistryError, match="cannot import module"):
        reg.resolve("no_such_module_xyz:Thing")
    with pytest.raises(RegistryError, match="has no attribute"):
        reg.resolve("collections:NoSuchThing")
