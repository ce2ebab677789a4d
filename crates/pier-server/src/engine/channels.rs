//! Channel selection (spec: `pg` omitted → the merchant's only or default channel;
//! `pg:'jtnet'` → that provider's default; `pg:'jtnet.MID'` → that MID; unknown → an error).

use super::{Engine, Error, Result};
use pier_store::Channel;

impl Engine {
    pub async fn select_channel(&self, merchant_id: &str, pg: Option<&str>) -> Result<Channel> {
        let channels = self.store.list_channels(Some(merchant_id)).await?;
        pick_channel(&channels, pg).cloned()
    }
}

/// The pure rule, separated for tests.
pub fn pick_channel<'a>(channels: &'a [Channel], pg: Option<&str>) -> Result<&'a Channel> {
    if channels.is_empty() {
        return Err(Error::Refused(
            "등록된 PG 설정정보가 없습니다. (the merchant has no PG channel)".into(),
        ));
    }
    let pick_default = |cs: Vec<&'a Channel>| -> Option<&'a Channel> {
        cs.iter()
            .find(|c| c.is_default)
            .copied()
            .or_else(|| cs.first().copied())
    };
    match pg.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(pick_default(channels.iter().collect()).expect("non-empty")),
        Some(spec) => {
            let (provider, mid) = match spec.split_once('.') {
                Some((p, m)) => (p, Some(m)),
                None => (spec, None),
            };
            let matching: Vec<&Channel> = channels
                .iter()
                .filter(|c| c.pg_provider == provider && mid.is_none_or(|m| c.mid == m))
                .collect();
            pick_default(matching).ok_or_else(|| {
                Error::Refused(format!(
                    "요청하신 PG({spec})의 설정정보가 존재하지 않습니다. (no channel for pg {spec:?}; configured: {})",
                    channels.iter().map(|c| format!("{}.{}", c.pg_provider, c.mid)).collect::<Vec<_>>().join(", ")
                ))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(id: &str, pg: &str, mid: &str, d: bool) -> Channel {
        Channel {
            id: id.into(),
            merchant_id: "m".into(),
            pg_provider: pg.into(),
            mid: mid.into(),
            is_default: d,
            sandbox: true,
            target: "inprocess".into(),
            created_at: 0,
        }
    }

    #[test]
    fn selection_rules() {
        let one = vec![ch("a", "jtnet", "m1", false)];
        assert_eq!(pick_channel(&one, None).unwrap().id, "a");
        assert_eq!(pick_channel(&one, Some("jtnet")).unwrap().id, "a");
        let several = vec![
            ch("a", "jtnet", "m1", false),
            ch("b", "jtnet", "m2", true),
            ch("c", "jtnet", "m3", false),
        ];
        assert_eq!(pick_channel(&several, None).unwrap().id, "b");
        assert_eq!(pick_channel(&several, Some("jtnet")).unwrap().id, "b");
        assert_eq!(pick_channel(&several, Some("jtnet.m3")).unwrap().id, "c");
        assert!(matches!(
            pick_channel(&several, Some("jtnet.nope")),
            Err(Error::Refused(_))
        ));
        assert!(matches!(
            pick_channel(&several, Some("kcp")),
            Err(Error::Refused(_))
        ));
        assert!(matches!(pick_channel(&[], None), Err(Error::Refused(_))));
    }
}
