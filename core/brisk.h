// Umbrella header for users of the library.
#pragma once
#include "core/allocator.h"
#include "core/autograd.h"
#include "core/device.h"
#include "core/dispatch.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "nn/functional.h"
