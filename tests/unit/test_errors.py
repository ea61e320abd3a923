"""User errors are one line and survive pickling (a Ray worker's exception reaches the driver pickled)."""

import pickle

from gp_distributed.errors import ConfigError, InputError


def test_input_error_is_one_line_and_round_trips() -> None:
    error = InputError("data/x.fasta", "invalid character '!'\nat column 3", line=4, column=3)
    assert str(error) == "data/x.fasta:4:3: invalid character '!' at column 3"
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.line, copy.column) == (InputError, str(error), 4, 3)


def test_config_error_round_trips() -> None:
    error = ConfigError("c.yaml", "train.max_steps", "unknown key")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.key_path) == (ConfigError, "c.yaml: train.max_steps: unknown key", "train.max_steps")
