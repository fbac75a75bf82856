package dev.sdeploy.demo

import android.content.ActivityNotFoundException
import android.net.Uri
import android.os.Bundle
import android.widget.Button
import android.widget.ImageView
import android.widget.TextView
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.core.content.FileProvider
import java.io.File

/** One screen: the image, Sample / Pick photo / Camera, and the top-5 with the inference time. */
class MainActivity : AppCompatActivity() {
    private lateinit var imageView: ImageView
    private lateinit var resultView: TextView
    private lateinit var buttons: List<Button>
    private var cameraUri: Uri? = null
    private val render: () -> Unit = { show() }

    private val pickPhoto = registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
        if (uri != null) Engine.submit(this, ImageSource.Content(uri, getString(R.string.picked_photo)))
    }

    private val takePicture = registerForActivityResult(ActivityResultContracts.TakePicture()) { saved ->
        val uri = cameraUri
        if (saved && uri != null) Engine.submit(this, ImageSource.Content(uri, getString(R.string.camera_photo)))
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        imageView = findViewById(R.id.image)
        resultView = findViewById(R.id.results)
        val sample = findViewById<Button>(R.id.sample)
        val pick = findViewById<Button>(R.id.pick)
        val camera = findViewById<Button>(R.id.camera)
        buttons = listOf(sample, pick, camera)
        cameraUri = savedInstanceState?.getString(KEY_CAMERA_URI)?.let { Uri.parse(it) }

        sample.setOnClickListener { Engine.submit(this, ImageSource.Asset(SAMPLE)) }
        pick.setOnClickListener {
            pickPhoto.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
        camera.setOnClickListener { launchCamera() }

        if (Engine.latest == null && Engine.pending == 0) Engine.submit(this, ImageSource.Asset(SAMPLE))
    }

    override fun onStart() {
        super.onStart()
        Engine.listener = render
        show()
    }

    override fun onStop() {
        if (Engine.listener === render) Engine.listener = null
        super.onStop()
    }

    override fun onSaveInstanceState(outState: Bundle) {
        super.onSaveInstanceState(outState)
        cameraUri?.let { outState.putString(KEY_CAMERA_URI, it.toString()) }
    }

    private fun launchCamera() {
        val dir = File(cacheDir, "camera").apply { mkdirs() }
        val uri = FileProvider.getUriForFile(this, "$packageName.fileprovider", File(dir, "photo.jpg"))
        cameraUri = uri
        try {
            takePicture.launch(uri)
        } catch (e: ActivityNotFoundException) {
            resultView.text = getString(R.string.no_camera)
        }
    }

    private fun show() {
        val busy = Engine.pending > 0
        for (button in buttons) button.isEnabled = !busy
        val outcome = Engine.latest
        outcome?.bitmap?.let { imageView.setImageBitmap(it) }
        resultView.text = when {
            busy -> getString(R.string.classifying)
            outcome != null -> outcome.text
            else -> ""
        }
    }

    companion object {
        private const val SAMPLE = "sample.png"
        private const val KEY_CAMERA_URI = "camera_uri"
    }
}
