//! `faas plan NAME`: where each step of a composition runs.

use faas_api::{Error, HandlerKind, Progress};
use faas_composition::plan::{plan as plan_of, Placement, Step};
use faas_composition::Composition;
use serde_json::json;

use crate::args::{GlobalArgs, PlanArgs};
use crate::output::{CliResult, Output};
use crate::progress::Spinner;
use crate::{backend, project};

/// Builds the project for the selected backend, reads composition `NAME` from the app's
/// manifest and prints each step: fused (a function of the app, run inside the composition's
/// invocation), invoked (another function, called through the backend while the invocation
/// waits), or a wait inside the invocation. With `--no-fuse`, or `FAAS_FUSE=off` in the
/// composition's `faas.toml` environment, every call is invoked.
pub async fn plan(global: &GlobalArgs, args: PlanArgs, out: Output) -> CliResult {
    faas_api::validate_function_name(&args.name)?;
    let project = project::load(&global.dir)?;
    let profile = backend::select(&project.config, global.backend.as_deref())?;
    let spinner = Spinner::new(out.is_json());
    spinner.step("building");
    let app = backend::build_for_profile(&project, &profile, None, false, &spinner).await?;
    spinner.finish();
    let described = app.manifest.function(&args.name).ok_or_else(|| {
        let compositions =
            app.manifest.functions.iter().filter(|f| f.handler == HandlerKind::Composition).map(|f| f.name.as_str());
        let known: Vec<&str> = compositions.collect();
        let list = if known.is_empty() { "none".to_string() } else { known.join(", ") };
        Error::not_found(format!("no composition named `{}` in app `{}`; its compositions: {list}", args.name, app.app))
    })?;
    let json = match (&described.handler, &described.composition) {
        (HandlerKind::Composition, Some(json)) => json,
        _ => {
            return Err(Error::bad_input(format!(
                "`{}` is a function of `{}`, not a composition; `faas plan` shows a composition's steps",
                args.name, app.app
            ))
            .into());
        }
    };
    let composition = Composition::from_value(json).map_err(Error::from)?;
    let spec = app.functions.iter().find(|f| f.name == args.name);
    let fused = !args.no_fuse && spec.map(faas_composition::fused::fused).transpose()?.unwrap_or(true);
    let plan = plan_of(&composition, |f| fused && app.manifest.function(f).is_some());
    let one = plan.one_invocation();
    out.json_ok(json!({
        "composition": args.name,
        "app": app.app,
        "backend": profile.name,
        "fused": fused,
        "oneInvocation": one,
        "steps": plan.steps,
    }));
    let waiting = plan.steps.iter().filter(|s| s.placement.waits()).count();
    let summary = match (one, waiting) {
        (true, 0) => "one invocation, every step fused into it".to_string(),
        (true, n) => format!("one invocation, every call fused into it; {n} wait(s) inside it"),
        (false, n) => format!("{n} of {} steps keep the composition's invocation waiting", plan.steps.len()),
    };
    let unfused = if fused { "" } else { ", unfused" };
    out.say(format!("plan of `{}` (app `{}`, backend `{}`{unfused}): {summary}", args.name, app.app, profile.name));
    let width = plan.steps.iter().map(|s| s.path.len()).max().unwrap_or(0);
    for step in &plan.steps {
        out.say(format!("  {:<10} {:<width$}  {}", label(step.placement), step.path, what(step, fused)));
    }
    Ok(())
}

fn label(placement: Placement) -> &'static str {
    match placement {
        Placement::Fused => "fused",
        Placement::Invoked => "invoked",
        Placement::Wait => "wait",
        Placement::Backoff => "back-off",
        Placement::AwaitEvent => "await",
    }
}

fn what(step: &Step, fused: bool) -> String {
    let function = step.function.as_deref().unwrap_or_default();
    let ms = step.ms.unwrap_or_default();
    match step.placement {
        Placement::Fused => function.to_string(),
        Placement::Invoked if !fused => {
            format!("{function} (unfused: invoked through the backend while the run waits)")
        }
        Placement::Invoked => {
            format!("{function} (not a function of this app: invoked through the backend while the run waits)")
        }
        Placement::Wait => format!("{ms} ms inside the invocation"),
        Placement::Backoff => format!("retry back-off from {ms} ms, inside the invocation"),
        Placement::AwaitEvent => {
            format!("an event within {ms} ms: needs the event gateway's conductor (fails inside one invocation)")
        }
    }
}
