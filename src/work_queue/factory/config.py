"""The factory's changeable settings and the ``-C`` JSON file that may change them while it runs.

Keys (CCTools ``read_config_file``): ``max-workers``, ``min-workers``, ``workers-per-cycle``,
``capacity``, ``timeout``, ``cores``, ``memory``, ``disk``, ``gpus``, ``autosize``,
``factory-timeout``, ``tasks-per-worker``, ``factory-name``, ``manager-name`` (or the old
``master-name``), ``foremen-name``, ``worker-extra-options``, ``condor-requirements``. Numbers
given as doubles are rounded up. A file that does not parse or holds a bad value changes
nothing: the factory keeps its last good settings and logs why.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from typing import Any

from .scaling import WorkerSize

INT_KEYS = {
    "max-workers": "max_workers", "min-workers": "min_workers",
    "workers-per-cycle": "workers_per_cycle", "capacity": "capacity", "timeout": "timeout",
    "cores": "cores", "memory": "memory", "disk": "disk", "gpus": "gpus",
    "autosize": "autosize", "factory-timeout": "factory_timeout",
    "tasks-per-worker": "tasks_per_worker",
}
STRING_KEYS = {
    "factory-name": "factory_name", "manager-name": "manager_name",
    "foremen-name": "foremen_name", "worker-extra-options": "extra_options",
    "condor-requirements": "condor_requirements",
}
OLD_KEYS = {"master-name": "manager_name"}


class ConfigError(ValueError):
    """The configuration file (or a value in it) is not usable; the message says why."""


@dataclass
class FactoryConfig:
    """Everything the configuration file may change (CLI defaults of ``work_queue_factory``)."""

    min_workers: int = 5
    max_workers: int = 100
    workers_per_cycle: int = 5
    tasks_per_worker: int = -1
    timeout: int = 300
    cores: int = -1
    memory: int = -1
    disk: int = -1
    gpus: int = -1
    autosize: int = 0
    capacity: int = 0
    factory_timeout: int = 0
    manager_name: str | None = None
    foremen_name: str | None = None
    factory_name: str | None = None
    extra_options: str | None = None
    condor_requirements: str | None = None

    @property
    def size(self) -> WorkerSize:
        return WorkerSize(self.cores, self.memory, self.disk, self.gpus)

    def copy(self) -> FactoryConfig:
        return dataclasses.replace(self)


def _number(key: str, value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(math.ceil(value))
    if isinstance(value, str):
        try:
            return int(math.ceil(float(value)))
        except ValueError:
            pass
    raise ConfigError(f"{key} has not a valid value: {value!r}")


def apply_settings(base: FactoryConfig, data: Any, has_manager_host: bool,
                   source: str = "configuration") -> FactoryConfig:
    """A copy of ``base`` with the settings of a parsed config object; :class:`ConfigError`
    (naming the key and the source) if any is bad, in which case nothing is applied."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source} is not a JSON object")
    cfg = base.copy()
    old_name = None
    for key, value in data.items():
        if key in INT_KEYS:
            setattr(cfg, INT_KEYS[key], _number(key, value))
        elif key in STRING_KEYS or key in OLD_KEYS:
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{key} has not a valid value: {value!r}")
            if key in OLD_KEYS:
                old_name = value
            else:
                setattr(cfg, STRING_KEYS[key], value)
    if "manager-name" not in data and old_name is not None:
        cfg.manager_name = old_name
    _check_limits(cfg, has_manager_host, source)
    return cfg


def _check_limits(cfg: FactoryConfig, has_manager_host: bool, source: str) -> None:
    """Refuse settings the factory cannot run with, and bring the merely inconsistent ones
    back in range (as CCTools does), so that a running factory never holds either."""
    if not has_manager_host and not cfg.manager_name:
        raise ConfigError(f"{source}: manager name is missing and no manager host was given")
    if cfg.min_workers < 0:
        raise ConfigError(f"{source}: min workers ({cfg.min_workers}) is less than zero")
    if cfg.max_workers < 1:
        raise ConfigError(f"{source}: max workers ({cfg.max_workers}) is less than one")
    if cfg.factory_timeout < 0:
        raise ConfigError(f"{source}: factory timeout ({cfg.factory_timeout}) is less than zero")
    if cfg.min_workers > cfg.max_workers:
        cfg.min_workers = cfg.max_workers
    if cfg.tasks_per_worker < 1:
        cfg.tasks_per_worker = cfg.cores if cfg.cores > 0 else 1


def read_config_file(path: str, base: FactoryConfig, has_manager_host: bool) -> FactoryConfig:
    """Parse ``path`` and apply it over ``base`` (see :func:`apply_settings`)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e.msg} at line {e.lineno} column "
                          f"{e.colno}") from None
    return apply_settings(base, data, has_manager_host, source=path)


class ConfigWatcher:
    """Re-reads the file when it changes (modification time, size or inode)."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._stamp: tuple[int, int, int] | None = None

    def changed(self) -> bool:
        try:
            st = os.stat(self.path)
        except OSError:
            return self._stamp is not None
        return (st.st_mtime_ns, st.st_size, st.st_ino) != self._stamp

    def load(self, base: FactoryConfig, has_manager_host: bool) -> FactoryConfig | None:
        """The new settings if the file changed, ``None`` if it did not. On a bad file raises
        :class:`ConfigError` once per change (the caller keeps ``base``)."""
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError as e:
            if self._stamp == (0, 0, 0):
                return None
            self._stamp = (0, 0, 0)
            raise ConfigError(f"cannot read {self.path}: {e.strerror or e}") from None
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        return read_config_file(self.path, base, has_manager_host)
