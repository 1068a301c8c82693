// The core layer in one include: tensors, dtypes, devices, autograd, ops and
// dispatch. Users of the whole library include "brisk.h" (the repository root).
#pragma once
#include "core/allocator.h"
#include "core/autograd.h"
#include "core/device.h"
#include "core/dispatch.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/mask.h"
#include "core/ops.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
