//! The test PG's payment-window pages (HTML), mounted under `/testpg/window/{session_id}`.
//!
//! Not built yet: this is the seam for them. The pages render `Engine::session`, call
//! `Engine::authenticate_card` / `authenticate_trans` / `authenticate_phone` (with
//! `Engine::sms_code` shown on the page) / `authenticate_vbank` or `Engine::abandon_session`, and
//! send the browser to the session's `return_url` with `auth_session_id` and `auth_token`.
//! `pgsim::router` already merges this router, so pages added here are served by pgsim too.

use super::Engine;

/// The window pages' routes. Empty until the pages exist.
pub fn router(engine: Engine) -> axum::Router {
    let _ = engine;
    axum::Router::new()
}
