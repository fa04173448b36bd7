//! `other-contract`: implements `mailroom:provider@3.0.0`, a contract this
//! host does not speak, so that `mailroom plugin check` can be seen to refuse
//! it with a clear reason. Tests only.

wit_bindgen::generate!({
    path: "wit",
    world: "mailroom:provider/plugin@3.0.0",
});

struct Future;

impl exports::mailroom::provider::provider::Guest for Future {
    fn info() -> String {
        "from the future".into()
    }
}

export!(Future);
