//! `freeze`: which parameters a training run holds fixed, from prefixes of
//! their names or `layers:A-B` (checked when the options are read, applied
//! when the run starts).

use stilts_model::error::{Error, Result};

/// The name prefixes one `freeze` entry stands for: `layers:A-B` (or
/// `layers:N`) is `encoder.layer.A` to `encoder.layer.B`; anything else is
/// itself, without a leading `roberta.` / `bert.`.
pub(crate) fn freeze_prefixes(entry: &str) -> Result<Vec<String>> {
    let bad = |why: &str| {
        Err(Error::msg(format!(
            "training options: `freeze` entry `{entry}` {why}; entries are prefixes of parameter names (`embeddings`, `encoder.layer.0`, `classifier`) or `layers:A-B` for encoder layers A to B"
        )))
    };
    let e = entry.trim();
    if e.is_empty() {
        return bad("is empty");
    }
    if let Some(range) = e.strip_prefix("layers:") {
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        return match (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
            (Ok(a), Ok(b)) if a <= b => Ok((a..=b).map(|i| format!("encoder.layer.{i}")).collect()),
            (Ok(_), Ok(_)) => bad("counts down (write the lower layer first)"),
            _ => bad("is not `layers:N` or `layers:A-B` with whole numbers"),
        };
    }
    let e = e
        .strip_prefix("roberta.")
        .or_else(|| e.strip_prefix("bert."))
        .unwrap_or(e);
    Ok(vec![e.to_string()])
}

/// A parameter name without its multi-task head's `TASK/` and the base
/// model's `roberta.` / `bert.`: `bert.embeddings.word_embeddings.weight`
/// is `embeddings.word_embeddings.weight`.
fn short_name(name: &str) -> &str {
    let n = name.split_once('/').map_or(name, |(_, rest)| rest);
    n.strip_prefix("roberta.")
        .or_else(|| n.strip_prefix("bert."))
        .unwrap_or(n)
}

/// Does the dotted prefix `p` cover `name` (whole components only:
/// `encoder.layer.1` covers `encoder.layer.1.output.dense.weight`, not
/// `encoder.layer.10...`)?
fn covers(p: &str, name: &str) -> bool {
    name == p
        || name
            .strip_prefix(p)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// The prefixes a model's parameters fall under, for messages:
/// `embeddings, encoder.layer.0-11, pooler, classifier`.
fn parameter_prefixes(names: &[String]) -> String {
    let mut groups: Vec<String> = vec![];
    let mut layers: Vec<usize> = vec![];
    for name in names {
        let task = name
            .split_once('/')
            .map(|(t, _)| format!("{t}/"))
            .unwrap_or_default();
        let parts: Vec<&str> = short_name(name).split('.').collect();
        if parts.len() > 2 && parts[0] == "encoder" && parts[1] == "layer" {
            if let Ok(i) = parts[2].parse::<usize>() {
                if !layers.contains(&i) {
                    layers.push(i);
                }
                continue;
            }
        }
        let g = if parts[0] == "encoder" && parts.len() > 2 {
            format!("{task}{}.{}", parts[0], parts[1])
        } else {
            format!("{task}{}", parts[0])
        };
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    layers.sort_unstable();
    // In the network's order: embeddings, layers, then the rest (heads).
    if let (Some(lo), Some(hi)) = (layers.first(), layers.last()) {
        groups.insert(0, format!("encoder.layer.{lo}-{hi} (`layers:{lo}-{hi}`)"));
    }
    if let Some(i) = groups.iter().position(|g| g == "embeddings") {
        let e = groups.remove(i);
        groups.insert(0, e);
    }
    groups.join(", ")
}

/// The parameters among `names` that `freeze` holds fixed. Each entry is a
/// prefix of parameter names, matched on whole dotted components and
/// without the base model's `roberta.` / `bert.` (so `embeddings` freezes
/// `bert.embeddings.word_embeddings.weight` and the position, token-type
/// and LayerNorm weights beside it; `encoder.layer.0` freezes layer 0, not
/// layer 10; a full name freezes one tensor), or `layers:A-B` (encoder
/// layers A to B). In a multi-task mix a head's parameters are
/// `TASK/classifier...`. An entry that matches no parameter is an error
/// naming the prefixes there are; so is freezing everything.
///
/// ```
/// use stilts_protocol::freeze::frozen_parameters;
/// let names: Vec<String> = ["bert.embeddings.word_embeddings.weight", "bert.encoder.layer.0.output.dense.weight",
///     "bert.encoder.layer.1.output.dense.weight", "classifier.weight"].iter().map(|s| s.to_string()).collect();
/// let f = frozen_parameters(&["embeddings".into(), "layers:0".into()], &names).unwrap();
/// assert_eq!(f.len(), 2);
/// assert!(frozen_parameters(&["embedding".into()], &names).is_err());
/// ```
pub fn frozen_parameters(
    freeze: &[String],
    names: &[String],
) -> Result<std::collections::BTreeSet<String>> {
    let mut out = std::collections::BTreeSet::new();
    for entry in freeze {
        for p in freeze_prefixes(entry)? {
            let hits: Vec<&String> = names
                .iter()
                .filter(|n| covers(&p, short_name(n)) || covers(&p, n))
                .collect();
            if hits.is_empty() {
                return Err(Error::msg(format!(
                    "training options: `freeze` entry `{entry}`{} matches no parameter of this model; its parameters fall under: {}",
                    if p != entry.trim() { format!(" ({p})") } else { String::new() },
                    parameter_prefixes(names)
                )));
            }
            out.extend(hits.into_iter().cloned());
        }
    }
    if !out.is_empty() && out.len() == names.len() {
        return Err(Error::msg(format!(
            "training options: `freeze` ({}) holds every parameter fixed: nothing is left to train",
            freeze.join(", ")
        )));
    }
    Ok(out)
}
