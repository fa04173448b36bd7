"""Drive the EWS emulator with the Python EWS client exchangelib.

Usage: exchangelib_client.py EWS_URL USERNAME PASSWORD ADDRESS. A configured
server (no autodiscovery), Basic sign-in. Lists the inbox within a window,
fetches MIME, syncs the folder, sends a MIME message with a copy saved in
Sent Items, and prints one JSON object for the Rust test
(tests/exchangelib.rs) to check.
"""
import datetime
import json
import sys

from exchangelib import BASIC, DELEGATE, Account, Configuration, Credentials, EWSDateTime, Message, UTC


def main():
    url, user, password, address = sys.argv[1:5]
    config = Configuration(service_endpoint=url, credentials=Credentials(user, password), auth_type=BASIC)
    account = Account(address, config=config, autodiscover=False, access_type=DELEGATE)
    since = EWSDateTime(2025, 1, 1, tzinfo=UTC)
    listed = account.inbox.filter(datetime_received__gte=since).order_by("-datetime_received")
    subjects = [m.subject for m in listed.only("subject", "datetime_received")]
    mimes = [m.mime_content for m in listed.only("mime_content")]
    synced = [(kind, getattr(item, "id", None)) for kind, item in account.inbox.sync_items()]
    raw = b"From: " + address.encode() + b"\r\nTo: dave@client.test\r\nSubject: sent by exchangelib\r\n\r\nhello\r\n"
    Message(account=account, folder=account.sent, mime_content=raw).send_and_save()
    print(json.dumps({
        "inbox_total": account.inbox.total_count,
        "subjects": subjects,
        "mime_subjects": [next((l for l in m.decode().splitlines() if l.startswith("Subject:")), "") for m in mimes],
        "synced": [kind for kind, _ in synced],
        "sync_state": bool(account.inbox.item_sync_state),
    }))


if __name__ == "__main__":
    main()
