//! The state diagrams in `docs/` are drawn from the model check's exploration, and this test
//! fails when the committed ones no longer match the code. To redraw them:
//!
//! ```text
//! UPDATE_DIAGRAMS=1 cargo test -p proofs --test diagrams
//! dot -Tsvg docs/lifecycle.dot -o docs/lifecycle.svg
//! dot -Tsvg docs/listener.dot -o docs/listener.svg
//! ```

use std::path::PathBuf;

use proofs::{explore, render_dot, render_mermaid};

fn check(file: &str, drawn: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(file);
    if std::env::var_os("UPDATE_DIAGRAMS").is_some() {
        std::fs::write(&path, drawn).expect("write the diagram");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == drawn,
        "docs/{file} no longer matches the code; redraw it with \
         UPDATE_DIAGRAMS=1 cargo test -p proofs --test diagrams (and the SVG with dot)"
    );
}

#[test]
fn the_connection_diagram_matches_the_code() {
    let graph = explore::connections().expect("model check").graph;
    check(
        "lifecycle.dot",
        &render_dot("lifecycle", &graph, &["Idle", "Established"]),
    );
    check(
        "lifecycle.mmd",
        &render_mermaid(&graph, &["Idle", "Established"]),
    );
}

#[test]
fn the_listener_diagram_matches_the_code() {
    let graph = explore::listeners().expect("model check").graph;
    check(
        "listener.dot",
        &render_dot("listener", &graph, &["Listening"]),
    );
    check("listener.mmd", &render_mermaid(&graph, &["Listening"]));
}
