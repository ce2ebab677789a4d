//! Shared rig: one engine on a manual clock, reached in-process and through a live pgsim.

use pier_domain::{Birth, CardNumber, Expiry, ManualClock, Pwd2Digit};
use pier_pg::pgsim::{self, FaultControl, Faults};
use pier_pg::testpg::{Engine, EngineConfig, InProcess};
use pier_pg::{CardData, Mid, Order, Pg};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// 2025-01-01T00:00:00Z.
pub const T0: i64 = 1_735_689_600;
/// Short, so that the cards and faults that make the PG fall silent cost little test time.
pub const DEADLINE: Duration = Duration::from_millis(300);

pub fn mid() -> Mid {
    Mid::new("pier_test_mid")
}

pub fn card(number: &str) -> CardData {
    CardData {
        number: CardNumber::parse(number).unwrap(),
        expiry: Expiry::parse("2099-12").unwrap(),
        birth: Some(Birth::parse("880101").unwrap()),
        pwd_2digit: Some(Pwd2Digit::parse("12").unwrap()),
    }
}

/// A fresh order with unique ids (order ids are unique per attempt, as Pier's imp_uids are).
pub fn order(amount_krw: i64) -> Order {
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    Order {
        order_id: format!("imp_{n:012}"),
        merchant_uid: format!("order-{n}"),
        amount_krw,
        tax_free_krw: 0,
        name: Some("테스트 상품".into()),
        buyer_name: Some("홍길동".into()),
        card_quota: 0,
    }
}

pub struct Rig {
    pub engine: Engine,
    pub clock: ManualClock,
    pub faults: FaultControl,
    pub addr: SocketAddr,
    pub inproc: InProcess,
    pub sim: pgsim::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Rig {
    pub async fn start() -> Self {
        Self::with_faults(Faults::default()).await
    }

    pub async fn with_faults(faults: Faults) -> Self {
        let clock = ManualClock::new(T0);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let engine = Engine::new(EngineConfig::ephemeral(&base), Arc::new(clock.clone())).unwrap();
        let faults = FaultControl::new(faults, 42).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(pgsim::serve_engine(
            engine.clone(),
            faults.clone(),
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            inproc: InProcess::new(engine.clone()).with_deadline(DEADLINE),
            sim: pgsim::Client::with_deadline(&base, DEADLINE).unwrap(),
            engine,
            clock,
            faults,
            addr,
            _stop: stop,
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Both connectors, named for assertion messages.
    pub fn both(&self) -> [(&'static str, &dyn Pg); 2] {
        [("in-process", &self.inproc), ("pgsim", &self.sim)]
    }
}
