"""{{name}}: a Mailroom provider plugin (contract `mailroom:provider@1.1.0`).

Made by `mailroom plugin new --lang python {{name}}`; built by
`mailroom plugin build` (componentize-py). It builds, loads and answers every
call; replace the parts marked "Your service" with the protocol your service
speaks. The bindings (`wit_world`) are generated from `wit/` at build time.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import bindings, provider
from wit_world.imports import mailroom_provider_types as types
from wit_world.imports import net


def bad_config(name, why):
    return Err(types.ProviderError_BadConfig(types.ConfigError(name, why)))


def setting(account, name):
    return next((v.strip() for k, v in account.settings if k == name and v.strip()), None)


def read_line(conn):
    line = b""
    while not line.endswith(b"\r\n"):
        chunk = conn.read(1)
        if not chunk:
            raise Err(types.ProviderError_Unreachable("the server closed the connection"))
        line += chunk
    return line[:-2].decode("utf-8", "replace")


def sign_in(account):
    """Your service: sign in over TLS with a line-based protocol (POP3's USER and PASS)."""
    host = setting(account, "server")
    if not host:
        raise bad_config("server", "is required")
    port = setting(account, "port") or "993"
    if not port.isdigit():
        raise bad_config("port", f"`{port}` is not a port number")
    try:
        conn = net.Connection.open(host, int(port), net.Security.TLS)
        read_line(conn)
        # The host performs the sign-in and hands back the server's answer;
        # the password never passes through here. Here POP3's USER and PASS;
        # IMAP, SMTP and SASL mechanisms are there too (docs/plugin-authors.md).
        step = net.SignIn(
            net.SignInProtocol.POP3,
            net.SignInMechanism.PASSWORD_COMMAND,
            None,
            account.address,
            "password",
        )
        lines = bytes(conn.authenticate(step)).decode("utf-8", "replace").splitlines()
        answer = lines[-1] if lines else ""
    except Err as e:
        if isinstance(e.value, types.ProviderError_Unreachable):
            raise
        raise Err(types.ProviderError_Unreachable(f"{host}:{port}: {e.value}")) from None
    if not answer.startswith("+OK"):
        raise Err(types.ProviderError_AuthFailed(f"the server said: {answer}"))
    return conn


class Session(provider.Session):
    def __init__(self, conn):
        self.conn = conn

    def sync(self, cursor, window):
        position = json.loads(cursor) if cursor else {"handed_over": 0}
        # Your service: list what is new after `position`, fetch at most a
        # page of it, and return it with the position after it.
        return provider.Page([], [], [], json.dumps(position), False, None)

    def fetch(self, ids):
        failed = [types.MessageFailure(i, "fetching by id is not written yet") for i in ids]
        return provider.Page([], [], failed, "", False, None)


# The one endpoint, which the password may go to.
SERVICE = "tls://{server}:{port}"


class Bindings(exports.Bindings):
    def secret_bindings(self):
        """Where each secret may go: the operator approves this list."""
        return [bindings.Binding("password", [SERVICE])]


class Provider(exports.Provider):
    def info(self):
        return provider.PluginInfo(
            "{{name}}",
            "0.1.0",
            "{{name}}: describe your service in one line.",
            [
                provider.Field("server", "Server", "For example mail.example.com.", False, True, None),
                provider.Field("port", "Port", "The TLS port.", False, False, "993"),
                provider.Field("password", "Password", "The mailbox password.", True, False, None),
            ],
            [provider.Endpoint(SERVICE, "The service, over TLS", None)],
        )

    def verify(self, account):
        sign_in(account)

    def open(self, account):
        return Session(sign_in(account))

    def send(self, account, message):
        raise Err(types.ProviderError_Other("this plugin does not send mail"))
