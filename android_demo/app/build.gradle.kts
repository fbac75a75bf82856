plugins {
    id("com.android.application")
}

android {
    namespace = "dev.sdeploy.demo"
    compileSdk = 36

    defaultConfig {
        applicationId = "dev.sdeploy.demo"
        // ExecuTorch's native library is built for android-26 (scripts/build_android_library.sh in
        // pytorch/executorch uses -DANDROID_PLATFORM=android-26), although its AAR manifest says 23.
        minSdk = 26
        targetSdk = 36
        versionCode = 2
        versionName = "0.2.0"
    }

    // One build per engine: the engines cannot share an APK (pytorch_android_lite ships its own,
    // incompatible libfbjni.so and libc++_shared.so next to ExecuTorch's fbjni 0.7.0), and only the
    // ExecuTorch and LiteRT builds can go to Google Play (16 KB pages). `sdeploy bundle --target`
    // picks the model format; build the variant that runs it (README.md, "Engines").
    flavorDimensions += "engine"
    productFlavors {
        create("executorch") {
            dimension = "engine"
            isDefault = true
        }
        create("litert") {
            dimension = "engine"
            applicationIdSuffix = ".litert"
        }
        create("pytorchLite") {
            dimension = "engine"
            applicationIdSuffix = ".pytorchlite"
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    // Models are stored uncompressed in the APK, so they are copied out as they are.
    androidResources {
        noCompress += listOf("pte", "ptl", "tflite")
    }

    // Native libraries stay uncompressed and 16 KB-aligned inside the APK (the default for
    // minSdk >= 23; written out because Google Play's 16 KB requirement depends on it).
    packaging {
        jniLibs {
            useLegacyPackaging = false
        }
    }

    testOptions {
        // The JVM unit tests under src/test read Python-made golden vectors; pass the variables on.
        unitTests.all { test ->
            listOf("SDEPLOY_GOLDEN_DIR", "SDEPLOY_MODEL_JSON", "SDEPLOY_MODEL_EXPECT", "SDEPLOY_REQUIRE_GOLDEN", "SDEPLOY_REPORT_OUT").forEach { name ->
                System.getenv(name)?.let { test.environment(name, it) }
            }
        }
    }
}

dependencies {
    // ExecuTorch 1.5.1: the runtime of the exporter that writes model.pte (executorch==1.5.1).
    // Includes the XNNPACK backend; arm64-v8a and x86_64; native libraries 16 KB-aligned.
    "executorchImplementation"("org.pytorch:executorch-android:1.5.1")
    // LiteRT 2.3.0 (CompiledModel API), the runtime of ai-edge-litert 2.3.0; 16 KB-aligned.
    "litertImplementation"("com.google.ai.edge.litert:litert:2.3.0")
    // The last PyTorch lite interpreter (reads TorchScript bytecode <= 8). Its native libraries
    // are 4 KB-aligned: this variant cannot be published on Google Play (README.md).
    "pytorchLiteImplementation"("org.pytorch:pytorch_android_lite:1.13.1")

    implementation("androidx.core:core-ktx:1.18.0")
    implementation("androidx.appcompat:appcompat:1.8.0")
    implementation("androidx.activity:activity-ktx:1.13.0") // PickVisualMedia, TakePicture, enableEdgeToEdge
    implementation("androidx.lifecycle:lifecycle-viewmodel-ktx:2.11.0")
    implementation("androidx.lifecycle:lifecycle-runtime-ktx:2.11.0") // repeatOnLifecycle
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.11.0")
    implementation("androidx.exifinterface:exifinterface:1.4.2")

    testImplementation("junit:junit:4.13.2")
}
