use clap::Args;

use super::DEFAULT_LAB;
use crate::{
    control,
    dataplane::{counters, AttachKind, Mode, ProgramStatus},
    lab,
    table::Table,
};

#[derive(Debug, Args)]
pub struct ModeArgs {
    #[arg(long, default_value = DEFAULT_LAB)]
    name: String,
    /// bridge, redirect or peer; without it, show the current mode.
    mode: Option<Mode>,
    /// How programs attach: tcx or tc (default: what the lab uses, else tcx
    /// where the kernel has it).
    #[arg(long)]
    attach: Option<AttachKind>,
}

pub async fn run(args: ModeArgs) -> anyhow::Result<i32> {
    match args.mode {
        Some(mode) => {
            let st = control::set_mode(&args.name, mode, args.attach).await?;
            match st.attach {
                Some(a) => eprintln!("lab {}: {} mode (attach {a})", args.name, st.mode),
                None => eprintln!("lab {}: {} mode", args.name, st.mode),
            }
        }
        None => {
            let inv = lab::inventory(&args.name).await?;
            let dp = control::status(&inv).await?;
            let attach = dp.attach.map_or("-", AttachKind::as_str);
            println!("{} (attach {attach})", dp.mode);
            if !dp.programs.is_empty() {
                print!("{}", counters_table(&dp.programs));
            }
        }
    }
    Ok(0)
}

/// Per-program counters: redirected, passed and dropped with reasons.
pub fn counters_table(programs: &[ProgramStatus]) -> Table {
    let mut t = Table::new([
        "NETNS",
        "DEVICE",
        "HOOK",
        "ATTACHED",
        "REDIRECTED",
        "COUNTERS",
    ]);
    for p in programs {
        let detail = p
            .counters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        t.row([
            p.netns.clone(),
            format!("{} ({})", p.ifname, p.ifindex),
            p.hook.to_owned(),
            if p.attached { "yes" } else { "no" }.to_owned(),
            counters::redirected(&p.counters).to_string(),
            detail,
        ]);
    }
    t
}
