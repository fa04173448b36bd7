"""Drive the Gmail emulator with Google's own Python client.

google-api-python-client builds its methods from the Gmail discovery document
it ships (static discovery), so whatever it sends is what Google's
description says a client sends. Usage: google_client.py ROOT_URL TOKEN.
Prints one JSON object with what each call returned, for the Rust test
(tests/google_client.rs) to check.
"""
import base64
import json
import sys

import google.oauth2.credentials
from googleapiclient.discovery import build


def main():
    root, token = sys.argv[1], sys.argv[2]
    credentials = google.oauth2.credentials.Credentials(token)
    gmail = build(
        "gmail",
        "v1",
        credentials=credentials,
        static_discovery=True,
        client_options={"api_endpoint": root},
        cache_discovery=False,
    )
    users = gmail.users()
    profile = users.getProfile(userId="me").execute()
    start = profile["historyId"]

    listed, request = [], users.messages().list(
        userId="me", q="after:1700000000", includeSpamTrash=False, maxResults=2
    )
    while request is not None:
        page = request.execute()
        listed += [m["id"] for m in page.get("messages", [])]
        request = users.messages().list_next(request, page)

    first = users.messages().get(userId="me", id=listed[0], format="raw").execute()
    raw = base64.urlsafe_b64decode(first["raw"])

    message = (
        b"From: ann@example.com\r\nTo: bob@example.net\r\n"
        b"Subject: sent by Google's client\r\n\r\nhello\r\n"
    )
    sent = users.messages().send(
        userId="me", body={"raw": base64.urlsafe_b64encode(message).decode()}
    ).execute()

    history = users.history().list(
        userId="me",
        startHistoryId=start,
        historyTypes=["messageAdded", "messageDeleted"],
    ).execute()
    added = [
        a["message"]["id"]
        for record in history.get("history", [])
        for a in record.get("messagesAdded", [])
    ]
    print(
        json.dumps(
            {
                "email": profile["emailAddress"],
                "listed": listed,
                "first_subject": [
                    line.decode()
                    for line in raw.splitlines()
                    if line.startswith(b"Subject:")
                ],
                "first_labels": first.get("labelIds", []),
                "sent": sent["id"],
                "sent_labels": sent.get("labelIds", []),
                "history_added": added,
                "history_id": history["historyId"],
            }
        )
    )


if __name__ == "__main__":
    main()
