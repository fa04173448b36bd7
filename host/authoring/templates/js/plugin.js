// {{name}}: a Mailroom provider plugin (contract mailroom:provider@1.1.0).
//
// Made by `mailroom plugin new --lang js {{name}}`; built by `mailroom plugin
// build` (npm run build: componentize-js). It builds, loads and answers every
// call; replace the parts marked "Your service" with the protocol your
// service speaks. Contract errors are thrown as `{ tag, val }` objects.

import { Connection } from "mailroom:provider/net@1.1.0";

// The one endpoint, which the password may go to.
const SERVICE = "tls://{server}:{port}";

const badConfig = (field, why) => ({ tag: "bad-config", val: { field, why } });

function setting(account, name) {
  const found = account.settings.find(([k, v]) => k === name && v.trim() !== "");
  return found ? found[1].trim() : undefined;
}

function readLine(conn) {
  let line = "";
  while (!line.endsWith("\r\n")) {
    const chunk = conn.read(1);
    if (chunk.length === 0) throw { tag: "unreachable", val: "the server closed the connection" };
    line += String.fromCharCode(chunk[0]);
  }
  return line.slice(0, -2);
}

// Your service: sign in over TLS with a line-based protocol (POP3's USER and PASS).
function signIn(account) {
  const host = setting(account, "server");
  if (!host) throw badConfig("server", "is required");
  const port = setting(account, "port") ?? "993";
  if (!/^\d+$/.test(port)) throw badConfig("port", `\`${port}\` is not a port number`);
  let conn, answer;
  try {
    conn = Connection.open(host, Number(port), "tls");
    readLine(conn);
    // The host performs the sign-in and hands back the server's answer; the
    // password never passes through here. Here POP3's USER and PASS; IMAP,
    // SMTP and SASL mechanisms are there too (see docs/plugin-authors.md).
    const lines = new TextDecoder()
      .decode(
        conn.authenticate({
          protocol: "pop3",
          mechanism: "password-command",
          user: account.address,
          secret: "password",
        }),
      )
      .split("\r\n")
      .filter((l) => l !== "");
    answer = lines[lines.length - 1] ?? "";
  } catch (e) {
    if (e && e.tag === "unreachable") throw e;
    throw { tag: "unreachable", val: `${host}:${port}: ${JSON.stringify(e?.payload ?? e)}` };
  }
  if (!answer.startsWith("+OK")) {
    throw { tag: "auth-failed", val: `the server said: ${answer}` };
  }
  return conn;
}

class Session {
  constructor(conn) {
    this.conn = conn;
  }

  sync(cursor, window) {
    const position = cursor ? JSON.parse(cursor) : { handedOver: 0 };
    // Your service: list what is new after `position`, fetch at most a page
    // of it, and return it with the position after it.
    return { messages: [], deletions: [], failed: [], cursor: JSON.stringify(position), more: false };
  }

  fetch(ids) {
    const failed = ids.map((id) => ({ id, why: "fetching by id is not written yet" }));
    return { messages: [], deletions: [], failed, cursor: "", more: false };
  }
}

// Where each secret may go: the operator approves this list.
export const bindings = {
  secretBindings() {
    return [{ secret: "password", endpoints: [SERVICE] }];
  },
};

export const provider = {
  Session,
  info() {
    return {
      name: "{{name}}",
      version: "0.1.0",
      description: "{{name}}: describe your service in one line.",
      fields: [
        { name: "server", label: "Server", help: "For example mail.example.com.", secret: false, required: true },
        { name: "port", label: "Port", help: "The TLS port.", secret: false, required: false, defaultValue: "993" },
        { name: "password", label: "Password", help: "The mailbox password.", secret: true, required: false },
      ],
      endpoints: [{ template: SERVICE, purpose: "The service, over TLS" }],
    };
  },
  verify(account) {
    signIn(account);
  },
  open(account) {
    return new Session(signIn(account));
  },
  send(account, message) {
    throw { tag: "other", val: "this plugin does not send mail" };
  },
};
