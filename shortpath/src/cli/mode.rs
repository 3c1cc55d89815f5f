use clap::Args;

use super::{
    session::{self, Ctx},
    DEFAULT_LAB,
};
use crate::{
    control,
    dataplane::{counters, AttachKind, DataplaneState, Mode, ProgramStatus},
    lab,
    names::LabName,
    table::Table,
};

#[derive(Debug, Args)]
pub struct ModeArgs {
    #[arg(long, default_value = DEFAULT_LAB)]
    pub name: String,
    /// bridge, redirect or peer; without it, show what the kernel runs.
    mode: Option<Mode>,
    /// How programs attach: tcx or tc (default: how they are attached now,
    /// else tcx where the kernel has it).
    #[arg(long)]
    attach: Option<AttachKind>,
}

pub async fn run(
    args: ModeArgs,
    name: LabName,
    ctx: impl FnOnce() -> anyhow::Result<Ctx>,
) -> anyhow::Result<i32> {
    let Some(mode) = args.mode else {
        let inv = lab::inventory(&name).await?;
        let dp = control::status(&inv).await?;
        let attach = dp.attach.map_or("-", AttachKind::as_str);
        println!("{} (attach {attach})", dp.mode);
        if let Some(d) = &dp.drift {
            println!("drift: {d}");
        }
        if dp
            .programs
            .iter()
            .any(|p| p.attached || !p.counters.is_empty())
        {
            print!("{}", counters_table(&dp.programs));
        }
        return Ok(0);
    };
    let ctx = ctx()?;
    let lock = ctx.lock(&name).await?;
    // What to go back to if interrupted: the kernel's setting, or bridge
    // (the stack does everything) when it cannot be read, e.g. because the
    // lab is half-switched already.
    let before = session::current_setting(&name)
        .await
        .unwrap_or(DataplaneState::default());
    let st = session::or_undo(
        &ctx,
        async { Ok(control::set_mode(&lock, mode, args.attach).await?) },
        async || session::restore_mode(&lock, before).await,
    )
    .await?;
    match st.attach {
        Some(a) => eprintln!("lab {name}: {} mode (attach {a})", st.mode),
        None => eprintln!("lab {name}: {} mode", st.mode),
    }
    Ok(0)
}

fn attachment(p: &ProgramStatus) -> String {
    let mut s = match (p.attach, p.mode) {
        (None, _) => "no".to_owned(),
        (Some(k), Some(m)) => format!("{m} ({k})"),
        (Some(k), None) => format!("? ({k})"),
    };
    if p.extra_programs > 0 {
        s += &format!(" +{}", p.extra_programs);
    }
    s
}

/// Per-port attachment (as the kernel reports it) and counters:
/// redirected, passed and dropped with reasons.
pub fn counters_table(programs: &[ProgramStatus]) -> Table {
    let mut t = Table::new([
        "NETNS",
        "DEVICE",
        "HOOK",
        "ATTACHED",
        "REDIRECTED",
        "NS/PKT",
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
            attachment(p),
            counters::redirected(&p.counters).to_string(),
            p.run
                .and_then(|r| r.ns_per_packet)
                .map_or_else(|| "-".to_owned(), |n| format!("{n:.0}")),
            detail,
        ]);
    }
    t
}
