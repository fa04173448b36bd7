"""Mailroom's POP3 provider plugin, in Python (built with componentize-py).

Written from `mailroom plugin new --lang python` as a third party would: it
knows the published contract (`mailroom:provider@1.1.0`) and nothing of the
host. POP3 has one folder and no dates of its own, so:

- ids are the server's UIDL strings; the folder is always `INBOX`;
- the received time is the newest `Received:` header's date, else `Date:`;
- the cursor is the set of UIDLs already handed over (compressed), so a sync
  picks up exactly the messages the server lists that the cursor lacks, and
  reports the ones the cursor has that the server no longer lists as deleted;
- a backfill goes newest first and stops at the first message older than the
  window (everything before it in the maildrop is older still).

It never sees the password: the host writes it into the connection.
"""

import base64
import email.utils
import zlib

from componentize_py_types import Err
from pop3 import Client, NetFailure, Pop3Error
from wit_world import exports
from wit_world.exports import bindings, provider
from wit_world.imports import mailroom_provider_types as types
from wit_world.imports import net

NAME = "pop3"
VERSION = "1.0.0"
FOLDER = "INBOX"
CURSOR_VERSION = "u1:"


def field(name, label, help, required=False, default=None, secret=False):
    return provider.Field(name, label, help, secret, required, default)


FIELDS = [
    field("pop3_host", "POP3 server", "For example pop.example.com.", required=True),
    field("pop3_port", "POP3 port", "995 for POP3S, 110 for STLS.", default="995"),
    field(
        "pop3_security",
        "POP3 security",
        "`tls` (port 995), `starttls` (port 110) or `plain` (only where the operator allows it).",
        default="tls",
    ),
    field("username", "User name", "Leave empty to sign in with the email address."),
    field("password", "Password", "Your mailbox password; where two-factor sign-in is on, an app password.", secret=True),
    field("batch_size", "Messages per page", "How many messages one page fetches.", default="100"),
]

ENDPOINTS = [
    provider.Endpoint("tls://{pop3_host}:{pop3_port}", "POP3 over TLS (POP3S)", None),
    provider.Endpoint(
        "tcp://{pop3_host}:{pop3_port}",
        "POP3 upgraded with STLS (plain only where the operator allows it)",
        None,
    ),
]


def bad_config(name, why):
    return Err(types.ProviderError_BadConfig(types.ConfigError(name, why)))


class Settings:
    """The account's settings, checked."""

    def __init__(self, account):
        values = {k: v.strip() for k, v in account.settings if v.strip()}
        self.host = values.get("pop3_host")
        if not self.host:
            raise bad_config("pop3_host", "is required")
        self.security = values.get("pop3_security", "tls")
        if self.security not in ("tls", "starttls", "plain"):
            raise bad_config("pop3_security", f"`{self.security}` is not one of tls, starttls, plain")
        self.port = self._number(values, "pop3_port", 995 if self.security == "tls" else 110, 1, 65535)
        self.batch = self._number(values, "batch_size", 100, 1, 10000)
        self.user = values.get("username") or account.address
        if "password" not in account.secrets:
            raise bad_config("password", "is required")

    @staticmethod
    def _number(values, name, default, low, high):
        text = values.get(name)
        if text is None:
            return default
        if not text.isdigit() or not low <= int(text) <= high:
            raise bad_config(name, f"`{text}` is not a number from {low} to {high}")
        return int(text)


def failure(e):
    """A protocol or network failure as the contract's typed error."""
    if isinstance(e, NetFailure):
        if isinstance(e.error, net.NetError_Denied):
            return bad_config("pop3_security", f"{e}; use `tls` or `starttls`")
        if isinstance(e.error, net.NetError_UnknownSecret):
            return bad_config("password", "is required")
        return Err(types.ProviderError_Unreachable(str(e)))
    if isinstance(e, Pop3Error) and e.command in ("USER", "PASS"):
        return Err(
            types.ProviderError_AuthFailed(
                f"the server refused the sign-in ({e.reply}); check the user name and password"
            )
        )
    return Err(types.ProviderError_Other(str(e)))


def signed_in(account):
    settings = Settings(account)
    try:
        client = Client(settings.host, settings.port, settings.security)
        client.login(settings.user, "password")
    except (NetFailure, Pop3Error) as e:
        raise failure(e) from None
    return settings, client


def encode_cursor(seen):
    packed = zlib.compress("\n".join(sorted(seen)).encode(), 9)
    return CURSOR_VERSION + base64.urlsafe_b64encode(packed).decode()


def decode_cursor(cursor):
    if not cursor:
        return set()
    if not cursor.startswith(CURSOR_VERSION):
        raise Err(types.ProviderError_CursorExpired())
    try:
        text = zlib.decompress(base64.urlsafe_b64decode(cursor[len(CURSOR_VERSION) :])).decode()
    except (ValueError, zlib.error, UnicodeDecodeError):
        raise Err(types.ProviderError_CursorExpired()) from None
    return set(text.split("\n")) if text else set()


def headers(raw, *names):
    """The values of the named headers, unfolded, in order (names lowercase)."""
    head = raw.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
    found = []
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower().decode("ascii", "replace") in names:
            found.append((name.strip().lower().decode(), value.decode("utf-8", "replace").strip()))
    return found


def received_at(raw):
    """The newest `Received:` date (the receiving server's clock), else `Date:`; 0 if neither parses."""
    found = headers(raw, "received", "date")
    received = [v.rsplit(";", 1)[-1] for n, v in found if n == "received"][:1]
    dates = [v for n, v in found if n == "date"][:1]
    for text in received + dates:
        try:
            return int(email.utils.parsedate_to_datetime(text.strip()).timestamp())
        except (TypeError, ValueError, IndexError):
            continue
    return 0


def message(uid, raw):
    return provider.Message(uid, None, FOLDER, [], received_at(raw), raw)


class Session(provider.Session):
    def __init__(self, settings, client):
        self.settings = settings
        self.client = client
        self.listing = None

    def _uidl(self):
        # The maildrop is locked for the session: its listing does not change.
        if self.listing is None:
            self.listing = self.client.uidl()
        return self.listing

    def sync(self, cursor, window):
        seen = decode_cursor(cursor)
        try:
            listing = self._uidl()
            page = self._page(seen, listing, window)
        except (NetFailure, Pop3Error) as e:
            raise failure(e) from None
        return page

    def _page(self, seen, listing, window):
        present = {uid for _, uid in listing}
        deletions = [provider.Deletion(uid, FOLDER) for uid in sorted(seen - present)]
        seen &= present
        skip = set(window.skip)
        new = [(n, uid) for n, uid in reversed(listing) if uid not in seen]
        batch = new[: self.settings.batch]
        messages, failed, out_of_window = [], [], False
        wanted = [(n, uid) for n, uid in batch if uid not in skip]
        seen.update(uid for _, uid in batch if uid in skip)
        uids = dict(wanted)
        for n, raw in self.client.retrieve([n for n, _ in wanted]):
            uid = uids[n]
            if out_of_window:
                continue
            if isinstance(raw, Pop3Error):
                failed.append(types.MessageFailure(uid, str(raw)))
                continue
            seen.add(uid)
            found = message(uid, raw)
            if 0 < found.received_at < window.since:
                out_of_window = True
                continue
            messages.append(found)
        if out_of_window:
            # Newest first: what is left is older still.
            seen.update(uid for _, uid in new)
        more = not out_of_window and len(new) > len(batch)
        done = len(seen)
        return provider.Page(
            messages,
            deletions,
            failed,
            encode_cursor(seen),
            more,
            provider.Progress(done, len(listing)),
        )

    def fetch(self, ids):
        try:
            numbers = {uid: n for n, uid in self._uidl()}
            wanted = [numbers[i] for i in ids if i in numbers]
            by_number = {n: uid for uid, n in numbers.items()}
            messages, failed = [], []
            for n, raw in self.client.retrieve(wanted):
                if isinstance(raw, Pop3Error):
                    failed.append(types.MessageFailure(by_number[n], str(raw)))
                else:
                    messages.append(message(by_number[n], raw))
        except (NetFailure, Pop3Error) as e:
            raise failure(e) from None
        failed += [types.MessageFailure(i, "no longer on the server") for i in ids if i not in numbers]
        return provider.Page(messages, [], failed, "", False, None)


class Bindings(exports.Bindings):
    def secret_bindings(self):
        """The password goes only to the account's POP3 server."""
        return [bindings.Binding("password", [e.template for e in ENDPOINTS])]


class Provider(exports.Provider):
    def info(self):
        return provider.PluginInfo(
            NAME,
            VERSION,
            "Any POP3 mailbox (RFC 1939): the inbox, by UIDL. Written in Python.",
            FIELDS,
            ENDPOINTS,
        )

    def verify(self, account):
        _, client = signed_in(account)
        client.quit()

    def open(self, account):
        return Session(*signed_in(account))

    def send(self, account, message):
        raise Err(
            types.ProviderError_Other(
                "POP3 only reads mail; send from an account with an SMTP server (IMAP, Gmail, Microsoft 365)"
            )
        )
