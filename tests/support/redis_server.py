"""The Valkey launcher of the tests; it lives in the package because ``freshrec bench`` starts one too."""

from freshrec.bench.redis_server import RedisServer, free_port, server_binary

__all__ = ["RedisServer", "free_port", "server_binary"]
