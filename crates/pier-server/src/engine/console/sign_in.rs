//! Operators and their sign-in: passwords (Argon2id), the sign-in limits, sessions and their
//! CSRF tokens, and `pier operator create`.

use super::{
    Actor, Role, MAX_EMAIL_BYTES, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, MSG_SIGN_IN_LIMITED,
    SESSION_ABSOLUTE_SECS, SESSION_IDLE_SECS, SESSION_SWEEP, SESSION_TOUCH_SECS,
};
use crate::edge::limit_key;
use crate::engine::{Engine, Error, Result};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use pier_domain::ids::random_hex;
use pier_store::{AuditEntry, ConsoleSession, Operator, StoreError};
use std::net::IpAddr;

/// Argon2id with the crate's defaults (m = 19 MiB, t = 2, p = 1: OWASP's recommended minimum).
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Unavailable(format!("password hashing failed: {e}")))
}

fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

pub fn normalize_email(email: &str) -> Result<String> {
    let e = email.trim().to_lowercase();
    let ok = e.len() <= MAX_EMAIL_BYTES
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(Error::Invalid(format!(
            "{email:.60?} is not an email address"
        )));
    }
    Ok(e)
}

impl Engine {
    /// `pier operator create`: returns the new operator's id.
    pub async fn create_operator(
        &self,
        imp_code: &str,
        email: &str,
        role: &str,
        password: &str,
    ) -> Result<String> {
        self.add_operator(imp_code, email, role, password, None)
            .await
    }

    /// One rule for `pier operator create` (`by` = None, audited as `cli`) and the console's
    /// operator form (`by` = the admin).
    pub(super) async fn add_operator(
        &self,
        imp_code: &str,
        email: &str,
        role: &str,
        password: &str,
        by: Option<&Actor>,
    ) -> Result<String> {
        let email = normalize_email(email)?;
        let role = Role::parse(role)
            .ok_or_else(|| Error::Invalid("role must be admin, operator or viewer".into()))?;
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(Error::Invalid(format!(
                "a password needs at least {MIN_PASSWORD_CHARS} characters"
            )));
        }
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(Error::Invalid(format!(
                "a password has at most {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        if self.store.get_merchant(imp_code).await?.is_none() {
            return Err(Error::NotFound(format!("no merchant {imp_code}")));
        }
        let pw = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || hash_password(&pw))
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))??;
        let o = Operator {
            id: format!("op_{}", random_hex(12)),
            merchant_id: imp_code.to_owned(),
            email: email.clone(),
            role: role.as_str().to_owned(),
            password_hash: hash,
            disabled: false,
            created_at: self.now(),
        };
        self.store.insert_operator(&o).await.map_err(|e| match e {
            StoreError::Conflict(_) => {
                Error::Conflict(format!("an operator with the email {email} exists"))
            }
            other => other.into(),
        })?;
        let entry = AuditEntry {
            id: format!("aud_{}", random_hex(12)),
            merchant_id: o.merchant_id.clone(),
            operator_id: by.map_or_else(|| o.id.clone(), |a| a.operator_id.clone()),
            actor: by.map_or_else(|| "cli".into(), |a| a.email.clone()),
            action: "operator.create".into(),
            target: Some(o.email.clone()),
            detail: Some(format!("role={}", o.role)),
            at: o.created_at,
        };
        self.store.insert_audit(&entry).await?;
        Ok(o.id)
    }

    fn session_hash(&self, token: &str) -> String {
        self.auth
            .keyed_hash(format!("console-session\n{token}").as_bytes())
    }

    /// The CSRF token of a session: derived from its cookie token, so nothing more is stored.
    fn session_csrf(&self, token: &str) -> String {
        let mut h = self
            .auth
            .keyed_hash(format!("console-csrf\n{token}").as_bytes());
        h.truncate(32);
        h
    }

    /// The CSRF token of the sign-in form, bound to the pre-session cookie's value.
    pub fn sign_in_csrf(&self, pre: &str) -> String {
        let mut h = self
            .auth
            .keyed_hash(format!("console-login\n{pre}").as_bytes());
        h.truncate(32);
        h
    }

    /// Checks an email and password; returns a new session's cookie token.
    pub async fn console_sign_in(
        &self,
        email: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<String> {
        let now = self.now();
        let now_ms = now.saturating_mul(1000);
        let addr = limit_key(client);
        let account = email.trim().to_lowercase();
        let st = &self.console;
        if !st.per_addr.allows(&addr, now_ms) || !st.per_account.allows(&account, now_ms) {
            return Err(Error::RateLimited(MSG_SIGN_IN_LIMITED.into()));
        }
        let op = if password.len() > MAX_PASSWORD_BYTES || account.len() > MAX_EMAIL_BYTES {
            None
        } else {
            self.store.operator_by_email(&account).await?
        };
        let stored = match &op {
            Some(o) => o.password_hash.clone(),
            None => match st.dummy_hash.get() {
                Some(h) => h.clone(),
                None => {
                    let h = tokio::task::spawn_blocking(|| hash_password("pier-console-dummy"))
                        .await
                        .map_err(|e| Error::Unavailable(e.to_string()))??;
                    st.dummy_hash.get_or_init(|| h).clone()
                }
            },
        };
        let pw = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || verify_password(&pw, &stored))
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        let op = match op {
            Some(o) if matches && !o.disabled => o,
            _ => {
                st.per_addr.charge(&addr, now_ms);
                st.per_account.charge(&account, now_ms);
                return Err(Error::Unauthorized);
            }
        };
        let token = random_hex(32);
        let s = ConsoleSession {
            id_hash: self.session_hash(&token),
            operator_id: op.id.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + SESSION_ABSOLUTE_SECS,
        };
        self.store.insert_session(&s).await?;
        self.store
            .delete_expired_sessions(now, now - SESSION_IDLE_SECS, SESSION_SWEEP)
            .await?;
        let a = Actor {
            operator_id: op.id,
            email: op.email,
            merchant_id: op.merchant_id,
            role: Role::parse(&op.role).unwrap_or(Role::Viewer),
            csrf: String::new(),
        };
        self.audit(&a, "sign_in", None, None).await;
        Ok(token)
    }

    /// The actor of a session cookie; `Unauthorized` when there is none or it expired.
    pub async fn console_session(&self, token: &str) -> Result<Actor> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Unauthorized);
        }
        let now = self.now();
        let id_hash = self.session_hash(token);
        let s = self
            .store
            .get_session(&id_hash)
            .await?
            .ok_or(Error::Unauthorized)?;
        if s.expires_at <= now || s.last_seen_at + SESSION_IDLE_SECS <= now {
            self.store.delete_session(&id_hash).await?;
            return Err(Error::Unauthorized);
        }
        let op = self
            .store
            .get_operator(&s.operator_id)
            .await?
            .filter(|o| !o.disabled)
            .ok_or(Error::Unauthorized)?;
        if now - s.last_seen_at >= SESSION_TOUCH_SECS {
            self.store.touch_session(&id_hash, now).await?;
        }
        Ok(Actor {
            operator_id: op.id,
            email: op.email,
            merchant_id: op.merchant_id,
            role: Role::parse(&op.role).unwrap_or(Role::Viewer),
            csrf: self.session_csrf(token),
        })
    }

    pub async fn console_sign_out(&self, token: &str) -> Result<()> {
        self.store.delete_session(&self.session_hash(token)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email(" Ops@Shop.Example ").unwrap(),
            "ops@shop.example"
        );
        for bad in ["", "a", "@x.y", "a@b", "a b@c.d", "a@.c"] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterx", &h));
        assert!(!verify_password("x", "not a hash"));
    }
}
