//! One entry of the API reference, the type each `api/` file's `DOCS`
//! table is made of (collected by `docs::api`).

/// One function, method or property of the API.
#[derive(Clone, Copy, Debug)]
pub struct ApiDoc {
    /// The name a script calls (`train`; `save` for `Model.save`): one name may
    /// have several entries, one per signature.
    pub name: &'static str,
    /// The section it is listed under (`models`, `tasks`, `training`, ...).
    pub group: &'static str,
    /// Its rhai signature, e.g. `model(spec: string) -> Model`; methods and
    /// properties as `Type.name`.
    pub signature: &'static str,
    /// What it does, in a sentence or a few (what `:help` prints).
    pub doc: &'static str,
    /// One line of rhai that uses it (`:help` prints it after `e.g.`).
    pub example: &'static str,
}

/// An entry of a `DOCS` table (a `const fn`, so the tables are constants).
pub const fn entry(
    group: &'static str,
    name: &'static str,
    signature: &'static str,
    doc: &'static str,
    example: &'static str,
) -> ApiDoc {
    ApiDoc {
        name,
        group,
        signature,
        doc,
        example,
    }
}
