use crate::kit::*;
