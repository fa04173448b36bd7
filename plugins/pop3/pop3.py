"""A POP3 client (RFC 1939, STLS from RFC 2595) over the host's `net.connection`.

It speaks the protocol and nothing else: no contract types, no cursors. The
password never passes through here: `login` asks the host to sign in
(`authenticate`), and the host blanks it out of anything read back.
"""

from componentize_py_types import Err
from wit_world.imports import net


class Pop3Error(Exception):
    """The server answered `-ERR`: `reply` is its text."""

    def __init__(self, command, reply):
        super().__init__(f"{command}: {reply}")
        self.command = command
        self.reply = reply


class NetFailure(Exception):
    """The connection failed: `error` is the host's `net-error`."""

    def __init__(self, endpoint, error):
        super().__init__(f"{endpoint}: {describe(error)}")
        self.error = error


def describe(error):
    """The host's `net-error`, in words."""
    kind = type(error).__name__.removeprefix("NetError_")
    value = getattr(error, "value", None)
    return f"{kind}: {value}" if value is not None else kind


class Client:
    """One signed-in POP3 connection."""

    def __init__(self, host, port, security):
        self.endpoint = f"{host}:{port}"
        self.buffer = b""
        wire = net.Security.TLS if security == "tls" else net.Security.PLAIN
        self.conn = self._net(lambda: net.Connection.open(host, port, wire))
        self._reply("greeting")
        if security == "starttls":
            self.command("STLS")
            if self.buffer:
                # What came after the answer to STLS came in plaintext: a man
                # in the middle's injected responses, never built on.
                raise Pop3Error("STLS", "the server sent more than its answer before the TLS upgrade (injected plaintext?)")
            self._net(self.conn.start_tls)

    def _net(self, call):
        try:
            return call()
        except Err as e:
            raise NetFailure(self.endpoint, e.value) from None

    def _line(self):
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
                return line
            self._fill()

    def _fill(self):
        chunk = self._net(lambda: self.conn.read(1 << 16))
        if not chunk:
            raise NetFailure(self.endpoint, net.NetError_Connection("the server closed the connection"))
        self.buffer += chunk

    def _reply(self, command):
        line = self._line().decode("utf-8", "replace")
        if line.startswith("+OK"):
            return line[3:].strip()
        raise Pop3Error(command, line.removeprefix("-ERR").strip() or line)

    def _multiline(self):
        """The body of a multi-line answer, dot-unstuffed, lines ending CRLF."""
        if self.buffer.startswith(b".\r\n"):
            self.buffer = self.buffer[3:]
            return b""
        while True:
            end = self.buffer.find(b"\r\n.\r\n")
            if end >= 0:
                body, self.buffer = self.buffer[: end + 2], self.buffer[end + 5 :]
                break
            self._fill()
        if body.startswith(b".."):
            body = body[1:]
        return body.replace(b"\r\n..", b"\r\n.")

    def command(self, line):
        """Send one command; its `+OK` text, or `Pop3Error`."""
        self._net(lambda: self.conn.write(line.encode() + b"\r\n"))
        return self._reply(line.split(" ")[0])

    def login(self, user, secret_field):
        """USER and PASS, performed whole by the host with the password named
        `secret_field`; the answers it hands back end with PASS's (or USER's
        refusal)."""
        if self.buffer:
            raise Pop3Error("USER", "the server sent more than it was asked for before the sign-in")
        step = net.SignIn(net.SignInProtocol.POP3, net.SignInMechanism.PASSWORD_COMMAND, None, user, secret_field)
        answer = bytes(self._net(lambda: self.conn.authenticate(step)))
        lines = [line for line in answer.split(b"\r\n") if line]
        self.buffer = (lines[-1] if lines else b"") + b"\r\n"
        self._reply("PASS")

    def uidl(self):
        """Every message as `(number, unique id)`, in the maildrop's order."""
        self.command("UIDL")
        listing = []
        for line in self._multiline().split(b"\r\n"):
            parts = line.split()
            if len(parts) == 2:
                listing.append((int(parts[0]), parts[1].decode("ascii", "replace")))
        return listing

    def retrieve(self, numbers):
        """RETR each message number, pipelined; `(number, raw or Pop3Error)`."""
        self._net(lambda: self.conn.write(b"".join(f"RETR {n}\r\n".encode() for n in numbers)))
        for n in numbers:
            try:
                self._reply("RETR")
            except Pop3Error as e:
                yield n, e
                continue
            yield n, self._multiline()

    def quit(self):
        try:
            self.command("QUIT")
        except (Pop3Error, NetFailure):
            pass
