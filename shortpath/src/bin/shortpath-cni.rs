//! shortpath-cni: the CNI plugin, installed as `shortpath` in the CNI bin
//! directory. See `shortpath::cni`.

use std::{collections::BTreeMap, io::Read as _};

fn main() {
    let vars: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("CNI_"))
        .collect();
    let mut stdin = Vec::new();
    // VERSION may come without stdin; a read error is a decode error later.
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!(r#"{{"cniVersion":"1.1.0","code":5,"msg":"cannot start: {e}"}}"#);
            std::process::exit(1);
        }
    };
    let out = rt.block_on(shortpath::cni::run(&vars, &stdin));
    if !out.stdout.is_empty() {
        println!("{}", out.stdout);
    }
    std::process::exit(out.exit);
}
