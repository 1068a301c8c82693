// brisk in one include, for programs that use the library (examples/,
// find_package(brisk)). Inside the library, each file includes what it uses.
#pragma once
#include "core/brisk.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "efficiency/method.h"
#include "models/models.h"
#include "nn/functional.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "nn/module.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "surgery/surgery.h"
#include "train/config.h"
#include "train/trainer.h"
