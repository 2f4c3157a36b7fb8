//! SHIM
#[derive(Debug, Clone, Copy)]
pub enum Device {
    Desktop,
}
#[derive(Debug, Clone, Copy)]
pub enum Browser {
    Other,
}
impl Device {
    pub fn as_str(&self) -> &'static str {
        "desktop"
    }
}
impl Browser {
    pub fn as_str(&self) -> &'static str {
        "other"
    }
}
pub struct ClientClass {
    pub device: Device,
    pub browser: Browser,
}
pub enum UaVerdict {
    Human(ClientClass),
    Bot,
}
pub fn classify(ua: Option<&str>) -> UaVerdict {
    if ua.is_some_and(|u| u.contains("bot")) {
        UaVerdict::Bot
    } else {
        UaVerdict::Human(ClientClass { device: Device::Desktop, browser: Browser::Other })
    }
}
